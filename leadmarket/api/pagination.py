import base64
import binascii
import contextlib
import hashlib
import json
import logging
from datetime import datetime

from django.core.cache import cache
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connections
from django.db.models import Q
from rest_framework import pagination
from rest_framework.exceptions import NotFound
from rest_framework.utils.urls import remove_query_param, replace_query_param

from .envelope import ok

logger = logging.getLogger(__name__)


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M`; data is {results, count, next, previous}."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_paginated_response(self, data):
        return ok(
            {
                "results": data,
                "count": self.page.paginator.count,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["results", "count", "next", "previous"],
            "properties": {
                "results": schema,
                "count": {"type": "integer"},
                "next": {"type": "string", "format": "uri", "nullable": True},
                "previous": {"type": "string", "format": "uri", "nullable": True},
            },
        }


EXACT_COUNT_LIMIT = 10_000
# How long a list's estimate (above EXACT_COUNT_LIMIT) is reused: paging through a big list,
# or polling its first page, counts it once a minute instead of on every request, where the
# count of 10,001 index entries and the EXPLAIN were most of a page's database time.
ESTIMATE_CACHE_SECONDS = 60


def encode_cursor(values: list, *, reverse: bool = False) -> str:
    """An opaque position in a list ordered by `values`' fields (e.g. [received_at, id])."""
    plain = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    return base64.urlsafe_b64encode(json.dumps([plain, reverse]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[list, bool]:
    try:
        values, reverse = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or not isinstance(reverse, bool):
            raise ValueError
        return values, reverse
    except (ValueError, TypeError, binascii.Error) as exc:
        raise NotFound("Invalid cursor.") from exc


def capped_count(queryset, limit: int = EXACT_COUNT_LIMIT) -> int:
    """The exact number of rows up to `limit`; above it PostgreSQL's planner estimate
    (never below `limit` + 1), so a list never counts a million rows on every request."""
    # Compiled once for both statements: building the SQL costs more Python than running it.
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    connection = connections[queryset.db]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql} LIMIT %s) AS capped", [*params, limit + 1])
        exact = cursor.fetchone()[0]
        if exact <= limit:
            return exact
        if connection.vendor != "postgresql":
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS counted", params)
            return cursor.fetchone()[0]
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return max(int(plan[0]["Plan"]["Plan Rows"]), limit + 1)


class KeysetPagination(PageNumberPagination):
    """The same `{results, count, next, previous}` and `?page=N&page_size=M`, built for
    large lists: `next`/`previous` are cursor links (`?cursor=...`), so following them costs
    one index range scan however deep the page; `page=N` still works (an OFFSET, slower
    when deep). `count` is exact up to EXACT_COUNT_LIMIT rows, an estimate above; a last page
    fetched by number (such as the first page of a short list) gives it without a count query,
    and an estimate is reused for ESTIMATE_CACHE_SECONDS by the same user's requests for the
    same list and filters.

    The queryset must be ordered by fields ending in a unique one, e.g. (-received_at, -id),
    with an index in that order. A view that serializes values() rows names their columns in
    `row_columns` (the ordering fields among them): the page is read as those rows, while the
    count runs on the queryset itself, without the joins the columns need.
    """

    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        size = self.get_page_size(request)
        self.ordering = [str(field) for field in queryset.query.order_by]
        self.model = queryset.model
        listed = queryset
        if getattr(view, "row_columns", None):
            queryset = queryset.values(*view.row_columns)
        cursor = request.query_params.get(self.cursor_query_param)
        self.page_number, self.reverse = None, False
        if cursor is not None:
            values, self.reverse = decode_cursor(cursor)
            if len(values) != len(self.ordering):
                raise NotFound("Invalid cursor.")
            queryset = queryset.filter(self._beyond(values, self.reverse))
            if self.reverse:
                queryset = queryset.order_by(*[self._flip(field) for field in self.ordering])
            rows = list(queryset[: size + 1])
        else:
            try:
                self.page_number = int(request.query_params.get(self.page_query_param, 1))
                if self.page_number < 1:
                    raise ValueError
            except ValueError as exc:
                raise NotFound("Invalid page.") from exc
            offset = (self.page_number - 1) * size
            rows = list(queryset[offset : offset + size + 1])
            if not rows and self.page_number > 1:
                raise NotFound("Invalid page.")
        self.has_more = len(rows) > size
        if self.page_number is not None and not self.has_more:
            self.count = offset + len(rows)  # the last page (often the only one) needs no count
        else:
            self.count = self._count(listed)
        rows = rows[:size]
        if self.reverse:
            rows.reverse()
        self.rows = rows
        return rows

    def _count(self, queryset) -> int:
        """`capped_count`, keeping a count above the limit (an estimate) per user, path and
        filters (not the position or page size). A count within the limit is never kept: it
        is exact and follows every change; a list that shrinks below the limit shows its last
        estimate until that expires."""
        filters = sorted(
            (name, values)
            for name, values in self.request.query_params.lists()
            if name not in (self.cursor_query_param, self.page_query_param, self.page_size_query_param)
        )
        scope = json.dumps([self.request.path, self.request.user.pk, filters])
        key = "list-estimate:v1:" + hashlib.sha256(scope.encode()).hexdigest()
        try:
            count = cache.get(key)
        except Exception:  # the cache is down: the list counts, as it would on a miss
            logger.warning("list count cache unavailable", exc_info=True)
            return capped_count(queryset, EXACT_COUNT_LIMIT)
        if count is None:
            count = capped_count(queryset, EXACT_COUNT_LIMIT)
            if count > EXACT_COUNT_LIMIT:
                with contextlib.suppress(Exception):
                    cache.set(key, count, ESTIMATE_CACHE_SECONDS)
        return count

    @staticmethod
    def _flip(field: str) -> str:
        return field[1:] if field.startswith("-") else f"-{field}"

    def _beyond(self, values: list, reverse: bool) -> Q:
        """Rows after the position (before it with `reverse`) in the list's order, with a
        bound on the first field alone so the index scan starts at the position."""
        parsed = []
        for field, value in zip(self.ordering, values, strict=True):
            try:
                parsed.append(self.model._meta.get_field(field.lstrip("-")).to_python(value))
            except (ValidationError, FieldDoesNotExist, TypeError, ValueError) as exc:  # a forged cursor
                raise NotFound("Invalid cursor.") from exc
        if any(value is None for value in parsed):
            raise NotFound("Invalid cursor.")
        names = [field.lstrip("-") for field in self.ordering]
        after = [("lt" if field.startswith("-") != reverse else "gt") for field in self.ordering]
        match = Q()
        for i in range(len(names) - 1, -1, -1):
            strictly = Q(**{f"{names[i]}__{after[i]}": parsed[i]})
            match = strictly if i == len(names) - 1 else strictly | (Q(**{names[i]: parsed[i]}) & match)
        return Q(**{f"{names[0]}__{after[0]}e": parsed[0]}) & match

    def _position(self, row) -> list:
        if isinstance(row, dict):  # a values() row
            return [row[field.lstrip("-")] for field in self.ordering]
        return [getattr(row, field.lstrip("-")) for field in self.ordering]

    def _cursor_link(self, row, *, reverse: bool) -> str:
        url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
        return replace_query_param(url, self.cursor_query_param, encode_cursor(self._position(row), reverse=reverse))

    def get_next_link(self):
        if not self.rows:
            return None
        if self.reverse or self.has_more:
            return self._cursor_link(self.rows[-1], reverse=False)
        return None

    def get_previous_link(self):
        if self.page_number is not None:
            if self.page_number <= 1:
                return None
            url = remove_query_param(self.request.build_absolute_uri(), self.cursor_query_param)
            if self.page_number == 2:
                return remove_query_param(url, self.page_query_param)
            return replace_query_param(url, self.page_query_param, self.page_number - 1)
        if not self.rows or (self.reverse and not self.has_more):
            return None
        return self._cursor_link(self.rows[0], reverse=True)

    def get_paginated_response(self, data):
        return ok(
            {"results": data, "count": self.count, "next": self.get_next_link(), "previous": self.get_previous_link()}
        )

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        described["properties"]["count"] = {
            "type": "integer",
            "description": (
                f"Exact up to {EXACT_COUNT_LIMIT:,} matching rows; above that PostgreSQL's estimate,"
                f" reused for up to {ESTIMATE_CACHE_SECONDS} s."
            ),
        }
        described["properties"]["next"]["description"] = "Cursor link to the next page (null on the last)."
        return described

    def get_schema_operation_parameters(self, view):
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque position from a `next` or `previous` link (instead of `page`).",
                "schema": {"type": "string"},
            },
        ]
