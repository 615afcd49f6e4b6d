from dataclasses import dataclass, field
from typing import Literal

import pytest

from harness.config import build_config, config_fields, parse_assignments
from harness.errors import HarnessError


@dataclass
class Cfg:
    lr: float = 1e-4
    steps: int = 10
    layers: tuple[int, ...] = (10, 20)
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    note: str | None = None
    ratio: float = field(default=0.5, metadata={"help": "a ratio"})

    def __post_init__(self):
        if self.steps <= 0:
            raise ValueError("steps must be positive")


def test_strings_are_coerced_to_declared_types():
    cfg = build_config(Cfg, {"lr": "1e-3", "steps": "5", "layers": "1,2,3", "flag": "true", "note": "none"}, "d")
    assert cfg.lr == 1e-3 and cfg.steps == 5 and cfg.layers == (1, 2, 3) and cfg.flag is True and cfg.note is None


def test_unknown_key_names_valid_keys_and_suggests():
    with pytest.raises(HarnessError) as err:
        build_config(Cfg, {"stesp": 3}, "defense 'x'")
    msg = str(err.value)
    assert "unknown config key 'stesp'" in msg and "Did you mean 'steps'" in msg and "lr, steps, layers" in msg


def test_mistyped_value_names_field_and_type():
    with pytest.raises(HarnessError, match=r"config key 'steps': 'many' is not a valid int"):
        build_config(Cfg, {"steps": "many"}, "d")
    with pytest.raises(HarnessError, match=r"'c' is not one of 'a', 'b'"):
        build_config(Cfg, {"mode": "c"}, "d")


def test_post_init_validation_becomes_a_clear_error():
    with pytest.raises(HarnessError, match="steps must be positive"):
        build_config(Cfg, {"steps": 0}, "d")


def test_config_fields_lists_defaults_and_help():
    rows = {r["name"]: r for r in config_fields(Cfg)}
    assert rows["lr"]["default"] == "0.0001" and rows["ratio"]["help"] == "a ratio"
    assert rows["layers"]["type"] == "list of int"


def test_parse_assignments_rejects_missing_equals():
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(HarnessError, match="key=value"):
        parse_assignments(["oops"])
