"""The OpenAPI schema says what the API really answers: every error status with its JSON body,
and `?all=true` lists as the plain array they are."""

from drf_spectacular import openapi
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import SAFE_METHODS

TOKEN_MESSAGE = inline_serializer(
    "TokenMessage",
    fields={
        "token_class": serializers.CharField(),
        "token_type": serializers.CharField(),
        "message": serializers.CharField(),
    },
)
ERROR = inline_serializer(
    "Error",
    fields={
        "detail": serializers.CharField(),
        "code": serializers.CharField(required=False, help_text="Set on token errors."),
        "messages": serializers.ListField(
            child=TOKEN_MESSAGE,
            required=False,
            help_text="Set on a refused access token: why each kind of token refused it.",
        ),
    },
)


class JWTScheme(SimpleJWTScheme):
    """simplejwt's bearer scheme, for the API's authentication: simplejwt's, which also stamps
    token reads in the read cache (news/cache/tokens.py)."""

    target_class = "news.cache.tokens.JWTAuthentication"


# Ids in paths: whole numbers written plainly (1, not 01); anything else is a 404.
ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
ID_PARAMETERS = ("id", "post_pk")
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    description="The ETag of a GET of the item: the change is made only if the item is still "
    "as that answer showed it (412 otherwise, and nothing is changed).",
)
ETAG = OpenApiParameter(
    "ETag",
    str,
    OpenApiParameter.HEADER,
    response=[200, 201],
    description="The answer's entity tag: send it in If-None-Match (304 while unchanged), or "
    "in If-Match on a write.",
)
LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    response=[201],
    description="The URL of the item created.",
)
READ_HEADERS = [
    OpenApiParameter(
        "Cache-Control",
        str,
        OpenApiParameter.HEADER,
        response=[200],
        description="public, max-age=N, must-revalidate without a token; private, no-cache "
        "with one.",
    ),
]
LAST_MODIFIED = OpenApiParameter(
    "Last-Modified",
    str,
    OpenApiParameter.HEADER,
    response=[200],
    description="When the item last changed, to the second (the ETag is exact).",
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
    "412": "The item changed since the ETag sent in If-Match; nothing was changed",
    "415": "The body is not JSON",
    "429": "Too many attempts; retry after Retry-After seconds",
    "503": "A write: the read cache (REDIS_URL) cannot be told of it, and nothing was changed."
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
        if self._is_news_item_write():
            codes.append("412")
        if self.view.get_throttles():
            codes.append("429")
        news = hasattr(self.view, "stream_all")
        if news and (self.method not in SAFE_METHODS or self._is_list_view()):
            codes.append("503")
        return sorted(codes)

    def _is_news_item_write(self) -> bool:
        return (
            hasattr(self.view, "stream_all")
            and "{id}" in self.path
            and self.method in ("PUT", "PATCH", "DELETE")
        )

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if not hasattr(self.view, "stream_all"):
            return parameters
        if self._is_news_item_write():
            parameters.append(IF_MATCH)
        if self.method != "DELETE":
            parameters.append(ETAG)
        if self.method == "POST":
            parameters.append(LOCATION)
        if self.method == "GET":
            parameters += READ_HEADERS
            if "{id}" in self.path:
                parameters.append(LAST_MODIFIED)
        return parameters

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter["name"] in ID_PARAMETERS:
                parameter["schema"] = dict(ID_SCHEMA)
        return parameters

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


# The items whose serializers refuse unknown fields (news.serializers.ReplaceOnPutSerializer),
# each with the component of its answer.
STRICT_ITEMS = {"Post": "Post", "Comment": "Comment", "NewComment": "Comment"}


def closed_request_bodies(result, generator, request, public):
    """drf-spectacular's postprocessing hook: `additionalProperties: false` on the request
    bodies of the items, with the item's read-only properties listed (sent back, ignored)."""
    schemas = result.get("components", {}).get("schemas", {})
    for item, answer in STRICT_ITEMS.items():
        answered = schemas.get(answer, {}).get("properties", {})
        for name in (f"{item}Request", f"Patched{item}Request"):
            if (body := schemas.get(name)) is None:
                continue
            properties = body.setdefault("properties", {})
            for field, spec in answered.items():
                if spec.get("readOnly") and field not in properties:
                    properties[field] = spec
            body["additionalProperties"] = False
    return result
