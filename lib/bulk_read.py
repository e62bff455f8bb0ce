"""A large read as columns: the database writes the rows as CSV text, pyarrow parses it.

Reading a million fills through the driver builds some 14 million Python objects, one per
value, then a frame from them. Here the database renders the rows as CSV and pyarrow's CSV
reader (C++) turns the text into typed columns, so Python handles a few large texts instead.

PostgreSQL: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` in the session's transaction; floats
are the query's ``double precision`` casts, which PostgreSQL writes in their shortest form that
reads back as the same double (any ``extra_float_digits`` above 0 since version 12; set for the
transaction, as a server may be configured with fewer), and a NULL is an empty unquoted field
while an empty text is quoted.

SQLite has no COPY: it renders every row of an id range as one CSV line (``printf``) and joins
the range into one text (``group_concat``), so Python receives one object per ``CHUNK_IDS`` rows:
- integers: ``%d``;
- text (categorical text too): ``%Q``, SQL-quoted (``'it''s'``), a NULL as a bare ``NULL``; the parser takes ``'`` as
  its quote character with doubling, keeps newlines inside quotes, and turns only a bare NULL
  into null (a quoted 'NULL' stays text);
- amounts: the decimal text as stored (``lib.models.Amount``), which pyarrow turns into the
  nearest double, as PostgreSQL does; so both databases give the same doubles. (SQLite's own
  ``CAST(... AS REAL)`` is not correctly rounded: it is one bit off for about 1 amount in
  4,000, which is why the amounts do not travel as SQLite's doubles.)
A nullable integer or amount is written as a bare ``NULL`` when it is one (printf would write 0).
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from pyarrow import csv
from sqlalchemy import Column, Double, LargeBinary, Table, case, cast, func, literal, select
from sqlalchemy.orm import Session

#: how a column travels (see the module's docstring); "category": text of few distinct values, parsed
#: straight into Arrow dictionaries and handed out categorical (no string per row on the way)
Kind = Literal["int", "text", "float", "category"]
#: rows per ``group_concat``: one text of a few megabytes
CHUNK_IDS = 50_000

_ARROW: dict[Kind, pa.DataType] = {"int": pa.int64(), "text": pa.string(), "float": pa.float64(),
                                   "category": pa.dictionary(pa.int32(), pa.string())}
#: SQLite's %Q quotes text the SQL way
_PARSE = csv.ParseOptions(quote_char="'", double_quote=True, newlines_in_values=True)


def _field(column: Column[Any], kind: Kind) -> tuple[str, Any]:
    """The printf directive and argument that write ``column`` as ``kind``."""
    if kind in ("text", "category"):
        return "%Q", column
    if kind == "float":  # the decimal text as stored; a number (no writer of this code stores one) as 17 digits
        return "%s", case((func.typeof(column) == "text", column), (column.is_(None), literal("NULL")),
                          else_=func.printf("%!.17g", column))
    if not column.nullable:
        return "%d", column
    return "%s", func.iif(column.is_(None), literal("NULL"), func.printf("%d", column))


def table_columns(session: Session, table: Table, columns: dict[str, Kind],
                  after_id: int | None = None) -> pd.DataFrame:
    """Every row of ``table`` (with an integer ``id`` key) after ``after_id``, ordered by id, as a
    frame of ``columns`` typed by kind: int64, str, float64, categorical (``str`` categories). The
    rows come from one statement on the session's connection (on SQLite a first one finds the id
    bounds: a row committed after it lies beyond them), so in its transaction where it has one,
    seeing its uncommitted writes."""
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql(session, table, columns, after_id)
    return _sqlite(session, table, columns, after_id)


def _frame(texts: list[bytes], columns: dict[str, Kind], parse: csv.ParseOptions, null: str) -> pd.DataFrame:
    """The CSV ``texts`` (whole lines each) as one frame of ``columns``; ``null`` unquoted is NULL,
    quoted it is text. Each text is parsed on its own: with newlines allowed inside values,
    pyarrow cannot split one large text into blocks itself (a million fills: 0.6 s as twenty
    texts of 50,000 rows against 1.0 s as one)."""
    texts = [text for text in texts if text]
    if not texts:
        return pd.DataFrame({n: pd.Series(dtype=pd.CategoricalDtype(pd.Index([], dtype="str")) if k == "category"
                                          else _ARROW[k].to_pandas_dtype()) for n, k in columns.items()})
    read = csv.ReadOptions(column_names=list(columns))
    convert = csv.ConvertOptions(column_types={n: _ARROW[k] for n, k in columns.items()}, null_values=[null],
                                 strings_can_be_null=True, quoted_strings_can_be_null=False)
    return pa.concat_tables([csv.read_csv(pa.py_buffer(text), read_options=read, parse_options=parse,
                                          convert_options=convert) for text in texts]).to_pandas()


def _postgresql(session: Session, table: Table, columns: dict[str, Kind], after_id: int | None) -> pd.DataFrame:
    query = select(*(cast(table.c[n], Double) if k == "float" else table.c[n] for n, k in columns.items()))
    if after_id is not None:
        query = query.where(table.c.id > int(after_id))
    sql = str(query.order_by(table.c.id).compile(session.get_bind(), compile_kwargs={"literal_binds": True}))
    parts: list[bytes] = []
    driver = session.connection().connection.driver_connection  # psycopg, in this transaction
    with driver.cursor() as cursor:
        cursor.execute("SET LOCAL extra_float_digits = 3")  # exact floats even where a server set fewer
        with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            parts.extend(bytes(part) for part in copy)
    # the server sends one row per message (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY)
    texts = [b"".join(parts[at:at + CHUNK_IDS]) for at in range(0, len(parts), CHUNK_IDS)]
    return _frame(texts, columns, csv.ParseOptions(newlines_in_values=True), "")


def _sqlite(session: Session, table: Table, columns: dict[str, Kind], after_id: int | None) -> pd.DataFrame:
    """One statement (so one read snapshot, though the driver opens no transaction for a SELECT):
    a recursive CTE numbers the id ranges, and each range's lines are joined in a subquery."""
    fields = [_field(table.c[name], kind) for name, kind in columns.items()]
    line = func.printf(",".join(f for f, _ in fields), *(a for _, a in fields))
    connection = session.connection()
    low, high = connection.execute(select(func.min(table.c.id), func.max(table.c.id))
                                   .where(table.c.id > (after_id if after_id is not None else -1))).one()
    if low is None:
        return _frame([], columns, _PARSE, "NULL")
    starts = select(literal(int(low)).label("start")).cte("chunks", recursive=True)
    starts = starts.union_all(select((starts.c.start + CHUNK_IDS).label("start"))
                              .where(starts.c.start + CHUNK_IDS <= int(high)))
    lines = (select(cast(func.group_concat(line, literal("\n")), LargeBinary))
             .where(table.c.id >= starts.c.start, table.c.id < starts.c.start + CHUNK_IDS).scalar_subquery())
    rows = connection.execute(select(starts.c.start, lines)).all()  # no ORDER BY: SQLite would copy every text
    texts = [text for _, text in sorted(rows, key=lambda row: row[0])]  # into a temporary b-tree to sort them
    frame = _frame(texts, columns, _PARSE, "NULL")
    ids = frame["id"].to_numpy()
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # group_concat's order is not promised
        frame = frame.sort_values("id", ignore_index=True)
    return frame
