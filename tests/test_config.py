"""Presets and settings fail early with clear messages."""

import dataclasses

import pytest

from sfumato.config import CloakConfig, levels_to_unit, resolve_config


def test_presets_order_budget_and_time():
    low, default, high = (resolve_config(i) for i in ("low", "default", "high"))
    assert low.max_levels < default.max_levels < high.max_levels
    steps = [resolve_config(quality=q).steps for q in ("preview", "faster", "default", "slower")]
    assert steps == sorted(steps) and len(set(steps)) == 4


def test_numbers_are_accepted():
    config = resolve_config(12, 30)
    assert config.max_levels == 12 and config.steps == 30
    assert config.epsilon == pytest.approx(levels_to_unit(12)) == pytest.approx(12 / 255)


@pytest.mark.parametrize("kwargs,match", [
    ({"intensity": "extreme"}, "low"),
    ({"quality": "ultra"}, "preview"),
    ({"quality": 2.5}, "whole"),
    ({"intensity": 0}, "max_levels"),
    ({"intensity": 500}, "max_levels"),
])
def test_bad_values_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        resolve_config(**kwargs)


def test_config_is_frozen_and_budget_scales_with_cap():
    config = CloakConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 3
    assert resolve_config("high").perceptual_budget("effnet-lite0") == pytest.approx(
        2 * resolve_config("default").perceptual_budget("effnet-lite0"))
    with pytest.raises(ValueError, match="no calibrated budget"):
        config.perceptual_budget("mystery-metric")
