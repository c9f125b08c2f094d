"""The deployed connector and bridge agree on how a fee is written: a precise decimal
(Debezium's default, base64 of the unscaled number) needs its scale from somewhere."""

from __future__ import annotations

import pytest
from deploy_helpers import DEPLOY
from events import present

from bridge.errors import BadInputError
from bridge.model import ChangeEvent
from bridge.pipeline import Pipeline
from bridge.settings import Settings, load_settings
from bridge.transitions import MemoryStateStore
from connectors.envelope import Column, TableSchema, envelope_bytes, pg_source
from connectors.types import pg_codec

CONFIG = DEPLOY / "config" / "onestop-bridge.toml"
INT8, INT4, TEXT, NUMERIC = 20, 23, 25, 1700
NUMERIC_14_2 = ((14 << 16) | 2) + 4  # the reference schema's fee_amount, as pgoutput types it
ROW = {  # column: (type oid, typmod, the server's text)
    "id": (INT8, -1, "7"), "code": (TEXT, -1, "000.00.23.H39-261127-0007"),
    "procedure_name": (TEXT, -1, "Cấp giấy phép xây dựng nhà ở riêng lẻ"),
    "agency_name": (TEXT, -1, "Trung tâm Phục vụ hành chính công tỉnh Tây Ninh"),
    "applicant_phone": (TEXT, -1, "0909 123 456"), "status": (INT4, -1, "6"),
    "fee_amount": (NUMERIC, NUMERIC_14_2, "1250000.00"),
}


def fee_requested(schemas: bool, status: int = 6, op: str = "c", fee_column: str = "fee_amount") -> bytes:
    """The status-6 change of a dossier (or another status) as the built-in connector writes it,
    from the reference schema or one whose fee column is `fee_column`."""
    rows = {(fee_column if name == "fee_amount" else name): spec for name, spec in ROW.items()}
    codecs = {name: pg_codec(oid, typmod) for name, (oid, typmod, _) in rows.items()}
    table = TableSchema("onestop", "public", "dossiers",
                        tuple(Column(name, codec, name != "id") for name, codec in codecs.items()),
                        ("id",))
    texts = {**{name: text for name, (_, _, text) in rows.items()}, "status": str(status)}
    after = {name: (codecs[name].text_converter() or str)(text) for name, text in texts.items()}
    source = pg_source("onestop", "onestop", table, 1_764_206_000_000_000, "false", 901,
                       24_023_128, 24_023_119)
    return envelope_bytes(table, None, after, source, op, schemas)


def notices(settings: Settings, value: bytes) -> list[str]:
    pipeline = Pipeline(settings)
    return [n.text for n in pipeline.notify(present(pipeline.decode(value)), MemoryStateStore())]


def test_the_deployed_pair_tells_the_citizen_the_amount() -> None:
    settings = load_settings(CONFIG)
    [text] = notices(settings, fee_requested(settings.source.schemas_enable))
    assert "1.250.000 đồng" in text


def test_the_default_pair_reads_the_reference_schemas_fee() -> None:
    """capture and run on their defaults (schemas off): the reference schema's NUMERIC(14,2)."""
    [text] = notices(Settings(), fee_requested(schemas=False))
    assert "1.250.000 đồng" in text


RENAMED = {"columns": {"fee_amount": "le_phi"}}  # another schema: its scale is its own


def test_without_the_schema_a_renamed_columns_scale_is_never_guessed() -> None:
    with pytest.raises(BadInputError, match="decimal_base64"):
        notices(Settings(source=RENAMED), fee_requested(schemas=False, fee_column="le_phi"))
    told = Settings(source={**RENAMED, "column_types": {"fee_amount": "decimal_base64:2"}})
    [text] = notices(told, fee_requested(schemas=False, fee_column="le_phi"))
    assert "1.250.000 đồng" in text


def test_an_unreadable_fee_holds_back_only_the_notice_that_shows_it() -> None:
    """Schemas off and no scale known: the receipt and the result still reach the citizen;
    the fee notice is refused (run dead-letters it, render reports the line) and leaves the
    dossier's state as it was, so a replay after the fix notifies."""
    pipeline, store = Pipeline(Settings(source=RENAMED)), MemoryStateStore()

    def decoded(status: int, op: str) -> ChangeEvent:
        return present(pipeline.decode(fee_requested(False, status, op, fee_column="le_phi")))

    [received] = pipeline.notify(decoded(2, "c"), store)
    assert received.kind == "RECEIVED" and "000.00.23.H39-261127-0007" in received.text
    with pytest.raises(BadInputError, match="le_phi.*decimal_base64"):
        pipeline.notify(decoded(6, "u"), store)
    assert present(store.get("7")).status == 2
    [ready] = pipeline.notify(decoded(9, "u"), store)
    assert ready.kind == "RESULT_READY"
