from rest_framework import serializers

from news.models import Comment, Post


class ReplaceOnPutSerializer(serializers.ModelSerializer):
    """PUT replaces the whole item: an optional field left out goes back to its default."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.instance is not None and not self.partial:
            model_fields = {field.name: field for field in self.Meta.model._meta.concrete_fields}
            for field in self.fields.values():
                model_field = model_fields.get(field.source)
                if field.read_only or model_field is None or not model_field.has_default():
                    continue
                attrs.setdefault(field.source, model_field.get_default())
        return attrs


class PostSerializer(ReplaceOnPutSerializer):
    class Meta:
        model = Post
        fields = ["id", "user_id", "title", "body", "created_at", "updated_at"]
        read_only_fields = ["user_id"]


class CommentSerializer(ReplaceOnPutSerializer):
    """A comment as read and changed; its post is chosen once, when it is created."""

    post_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "post_id", "name", "email", "body", "created_at", "updated_at"]


class NewCommentSerializer(CommentSerializer):
    """A comment created through /news/comments/: the post is named by `post_id`."""

    post_id = serializers.PrimaryKeyRelatedField(source="post", queryset=Post.objects.all())
