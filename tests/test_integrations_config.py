"""``[integrations]`` in config.toml: each entry true or false, anything else a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from greentrack.config import load_config
from greentrack.errors import ConfigError


def test_integrations_section_is_read(gt_home: Path) -> None:
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text("[integrations]\nmlflow = true\n")
    assert load_config().integrations == {"mlflow": True}


@pytest.mark.parametrize("body", ['[integrations]\nmlflow = "yes"\n', 'integrations = "mlflow"\n'])
def test_a_bad_integrations_section_is_a_one_line_error(gt_home: Path, body: str) -> None:
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text(body)
    with pytest.raises(ConfigError, match=r"\[integrations\]") as e:
        load_config()
    assert "\n" not in str(e.value)
