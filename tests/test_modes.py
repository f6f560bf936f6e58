"""cakes_video.utils.modes: eval mode for a while, every submodule's own mode back after."""
import pytest
from torch import nn

from cakes_video.utils.modes import evaluating


def test_evaluating_restores_mixed_modes_even_after_an_error():
    model = nn.Sequential(nn.BatchNorm1d(2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    model.train()
    model[1][1].eval()  # a frozen BatchNorm inside a training model
    with pytest.raises(RuntimeError, match="boom"), evaluating(model) as inside:
        assert inside is model and not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == [True, True, True, True, False]
