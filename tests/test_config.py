from pathlib import Path

import pytest

from attendance_daemon.common.errors import InvalidRequest
from attendance_daemon.config import Config, default_device_id, load_config


def test_defaults_without_file() -> None:
    cfg = load_config(None)
    assert cfg.recognition.detector == "tflite"
    assert cfg.mqtt.base_topic == "attendance"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[recognition]\nanalysis_fsp = 5\n")
    with pytest.raises(InvalidRequest, match=r"recognition\.analysis_fsp"):
        load_config(p)


def test_bad_value_is_named(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[recognition]\nanalysis_fps = -1\n[mqtt]\nport = "x"\n')
    with pytest.raises(InvalidRequest) as err:
        load_config(p)
    assert "recognition.analysis_fps" in err.value.message
    assert "mqtt.port" in err.value.message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[paths\n")
    with pytest.raises(InvalidRequest, match="invalid TOML"):
        load_config(p)
    with pytest.raises(InvalidRequest, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    p = tmp_path / "etc" / "c.toml"
    p.parent.mkdir()
    p.write_text('[paths]\ndata_dir = "../state"\n')
    cfg = load_config(p)
    assert cfg.paths.data_dir == (tmp_path / "state").resolve()
    assert cfg.paths.media == (tmp_path / "state" / "media").resolve()


def test_device_id_is_topic_safe() -> None:
    assert default_device_id() and all(c.isalnum() or c in "_-" for c in default_device_id())
    with pytest.raises(ValueError):
        Config.model_validate({"mqtt": {"device_id": "Bad/Id"}})
    with pytest.raises(ValueError):
        Config.model_validate({"mqtt": {"base_topic": "a/#"}})


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "attendance-daemon.toml"
    cfg = load_config(example)
    assert cfg.paths.data_dir == Path("/var/lib/attendance-daemon")
    assert cfg.recognition.detector == "tflite" and cfg.mqtt.port == 1883


def test_moodle_acronyms_left_early_follows_a_renamed_present(tmp_path: Path) -> None:
    """Moodle has no "left early": it is exported as present, so a school's own present acronym, unless the
    school gives left_early its own (a row with an acronym the school's set lacks is skipped by Moodle)."""
    p = tmp_path / "c.toml"
    p.write_text('[attendance]\nmoodle_acronyms = { present = "Pr", absent = "Ab" }\n')
    assert load_config(p).attendance.moodle_acronyms == {"present": "Pr", "late": "L", "left_early": "Pr",
                                                         "excused": "E", "absent": "Ab"}
    p.write_text('[attendance]\nmoodle_acronyms = { present = "Pr", left_early = "LE" }\n')
    assert load_config(p).attendance.moodle_acronyms["left_early"] == "LE"
    assert load_config(None).attendance.moodle_acronyms["left_early"] == "P"
