"""The OpenAPI schema says what the API really answers: every error status with its JSON body,
and `?all=true` lists as the plain array they are."""

from drf_spectacular import openapi
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

ERROR = inline_serializer(
    "Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(required=False, help_text="Set on token errors."),
    },
)
FIELD_ERRORS = {
    "type": "object",
    "description": 'Field errors, `{"title": ["Ensure this field ..."]}`, or `{"detail": "..."}` '
    "for a body that is not JSON or a query parameter that is wrong.",
    "additionalProperties": {
        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
    },
}
# What DRF's CharField takes, as a pattern: no NUL character, and, when it trims and refuses a
# blank value, at least one character that is not whitespace (Python's str.isspace(), spelled out
# so that every regex dialect reads it the same).
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TEXT = r"^[^\x00]+$"  # the empty string, where allowed, is its own alternative
NON_BLANK_TEXT = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
DESCRIPTIONS = {
    "400": "Invalid input",
    "401": "No valid token (an invalid token is refused even on reads), or wrong credentials",
    "403": "Only the author or staff may change this item",
    "404": "No such item, page or URL",
    "413": "The body is larger than the limit",
    "415": "The body is not JSON",
    "429": "Too many attempts; retry after Retry-After seconds",
    "503": "A write: the cache of reads (REDIS_URL) cannot be told of it, and nothing was changed."
    " A list with ?all=true: too many streams at the moment; retry after Retry-After seconds",
}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_statuses():
            if code not in responses:
                responses[code] = self._error_response(code, direction)
        return responses

    def _error_statuses(self) -> list[str]:
        has_body = self.method in ("POST", "PUT", "PATCH")
        codes = ["401"]
        if has_body or self._get_filter_parameters() or self._get_pagination_parameters():
            codes.append("400")
        if (
            self.method not in SAFE_METHODS
            and self.method != "POST"
            and self.view.authentication_classes
        ):
            codes.append("403")
        if self.view.authentication_classes and ("{" in self.path or self._is_list_view()):
            codes.append("404")
        if has_body:
            codes += ["413", "415"]
        if self.view.get_throttles():
            codes.append("429")
        news = hasattr(self.view, "stream_all")
        if news and (self.method not in SAFE_METHODS or self._is_list_view()):
            codes.append("503")
        return sorted(codes)

    def _error_response(self, code: str, direction: str) -> dict:
        body = FIELD_ERRORS if code == "400" else ERROR
        response = self._get_response_for_code(body, code, direction=direction)
        response["description"] = DESCRIPTIONS[code]
        if code == "429" or (code == "503" and self.method in SAFE_METHODS):
            response["headers"] = RETRY_AFTER
        return response

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & schema.keys()
        ):
            blank_refused = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NON_BLANK_TEXT if blank_refused else TEXT
        return schema

    def _get_response_for_code(
        self, serializer, status_code, media_types=None, direction="response"
    ):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if (
            status_code == "200"
            and hasattr(self.view, "stream_all")
            and self._is_list_view(serializer)
        ):
            for content in response.get("content", {}).values():
                item = self.resolve_serializer(serializer, direction).ref
                content["schema"] = {
                    "oneOf": [content["schema"], {"type": "array", "items": item}],
                    "description": "A page; with `?all=true`, every matching item as one array.",
                }
        return response
