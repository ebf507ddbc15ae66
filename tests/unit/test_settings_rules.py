"""Text rules, credential names and the merge of a collection key's PUT, unit by unit."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from wipsvc.collection import SECRET_MASK, CollectionConfig
from wipsvc.collection_access import OperatorOnly, UnusableSetting, merge_settings
from wipsvc.credentials import CredentialError, check_name, name_for, resolve
from wipsvc.store.errors import describe_error
from wipsvc.text import MAX_TEXT_CHARS, check_text, clean_json, clean_text, csv_cell, one_line


@pytest.mark.parametrize(
    "bad", ["\x00", chr(0xD800), chr(0xDFFF), "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1f"]
)
def test_forbidden_characters_are_refused_and_cleaned(bad: str) -> None:
    with pytest.raises(ValueError, match="may not contain"):
        check_text(f"a{bad}b")
    assert clean_text(f"a{bad}b") == "ab"


def test_tab_newline_and_other_text_pass() -> None:
    text = "a\tb\nc\rd é 😀 \x7f"
    assert check_text(text) == text and clean_text(text) == text
    assert len(clean_text("x" * (MAX_TEXT_CHARS + 1))) == MAX_TEXT_CHARS
    assert clean_json({"k\x00": ["v\x00", 1, None, {"n": "\ud800"}]}) == {"k": ["v", 1, None, {"n": ""}]}
    assert one_line("a\n\x00 b\r\n\tc", 4) == "a b "


@pytest.mark.parametrize(
    ("value", "cell"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
     ("\rx", "'\rx"), ("a=1", "a=1"), ("", ""), ("1.5", "1.5")],
)  # fmt: skip
def test_csv_cells_never_start_a_formula(value: str, cell: str) -> None:
    assert csv_cell(value) == cell


def test_collection_config_refuses_control_characters_anywhere() -> None:
    with pytest.raises(ValidationError, match="U\\+0000"):
        CollectionConfig.model_validate({"cleaning": {"rules": {}, "function": "clean\x00Row"}})
    with pytest.raises(ValidationError, match="a key"):
        CollectionConfig.model_validate({"columns": {"sku": "A", "url": "B", "t\ud800": "C"}})


def test_credential_names_stay_inside_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "creds"
    (directory / "team").mkdir(parents=True)
    (directory / "team" / "sa.json").write_text("{}")
    (tmp_path / "secret.json").write_text("{}")
    (directory / "link.json").symlink_to(tmp_path / "secret.json")
    assert check_name("team/sa.json", str(directory)) == (directory / "team" / "sa.json").resolve()
    for name in ("../secret.json", "team/../../secret.json", "/etc/passwd", "~root/x", "link.json", "C:x"):
        with pytest.raises(CredentialError):
            check_name(name, str(directory))
    with pytest.raises(CredentialError, match="does not exist"):
        check_name("team/none.json", str(directory))
    with pytest.raises(CredentialError, match="WIPSVC_CREDENTIALS_DIR"):
        check_name("team/sa.json", None)
    # Paths stored before names: inside the directory they still work; outside, one line says what to do.
    assert resolve(str(directory / "team" / "sa.json"), str(directory)).name == "sa.json"
    with pytest.raises(CredentialError, match="move it into"):
        resolve(str(tmp_path / "secret.json"), str(directory))
    assert name_for(str(directory / "team" / "sa.json"), str(directory)) == "team/sa.json"
    assert name_for(str(tmp_path / "secret.json"), str(directory)) is None
    assert name_for("team/sa.json", str(directory)) is None


def _config(**sections: dict[str, object]) -> CollectionConfig:
    return CollectionConfig.model_validate(sections)


def test_a_collection_key_keeps_operator_fields_and_may_not_change_them() -> None:
    stored = _config(
        sheet={"spreadsheet_id": "s1", "credentials_file": "a.json"},
        cleaning={"backend": "apps_script_webapp", "webapp_url": "https://x/exec", "webapp_secret": "top"},
    )
    merged = merge_settings(_config(sheet={"worksheet": "T"}), stored, is_admin=False)
    assert merged.sheet.worksheet == "T" and merged.sheet.spreadsheet_id == "s1"
    assert merged.cleaning.webapp_url == "https://x/exec"
    assert merged.cleaning.webapp_secret == SecretStr("top")
    masked = _config(cleaning={"webapp_url": "https://x/exec", "webapp_secret": SECRET_MASK})
    assert merge_settings(masked, stored, is_admin=False).cleaning.webapp_secret == SecretStr("top")
    with pytest.raises(OperatorOnly) as refused:
        merge_settings(
            _config(sheet={"spreadsheet_id": "s2"}, cleaning={"function": "rm"}), stored, is_admin=False
        )
    assert refused.value.fields == ["sheet.spreadsheet_id", "cleaning.function"]
    # An admin replaces; the mask still stands for the stored secret.
    admin = merge_settings(masked, stored, is_admin=True)
    assert admin.sheet.spreadsheet_id is None and admin.cleaning.webapp_secret == SecretStr("top")
    with pytest.raises(UnusableSetting, match="no secret is stored"):
        merge_settings(masked, None, is_admin=True)


def test_errors_never_show_sql() -> None:
    import sqlalchemy.exc

    error = sqlalchemy.exc.IntegrityError("INSERT INTO secrets VALUES ('x')", {}, ValueError("dup"))
    assert describe_error(error) == "database error (ValueError)"
    assert describe_error(ExceptionGroup("g", [error])) == "database error (ValueError)"
    assert describe_error(RuntimeError("a\n\x00b"), with_type=True) == "RuntimeError: a b"
