from rest_framework import serializers

from news.models import Comment, Post


class PostSerializer(serializers.ModelSerializer):
    class Meta:
        model = Post
        fields = ["id", "user_id", "title", "body", "created_at", "updated_at"]
        read_only_fields = ["user_id"]


class CommentSerializer(serializers.ModelSerializer):
    post_id = serializers.PrimaryKeyRelatedField(source="post", queryset=Post.objects.all())

    class Meta:
        model = Comment
        fields = ["id", "post_id", "name", "email", "body", "created_at", "updated_at"]

    def get_fields(self):
        fields = super().get_fields()
        # The post is chosen once: in the body when creating, by the URL under a post, never after.
        if self.instance is not None or "post" in self.context:
            fields["post_id"] = serializers.IntegerField(read_only=True)
        return fields
