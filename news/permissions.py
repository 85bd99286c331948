from rest_framework import permissions


class IsOwnerOrStaffOrReadOnly(permissions.BasePermission):
    """Anyone may read; only the user who created a row, or staff, may change or delete it."""

    message = "Only the author of this item or a staff user may change it."

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        user = request.user
        return bool(
            user and user.is_authenticated and (user.is_staff or obj.created_by_id == user.pk)
        )
