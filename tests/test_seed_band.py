import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from optbook.figures import plots  # noqa: E402


def test_seed_band_draws_the_mean_and_the_range_in_the_catalog_colour():
    x = torch.tensor([1.0, 2.0, 3.0])
    runs = torch.tensor([[1.0, 2.0, float("inf")], [3.0, 4.0, 5.0]])  # the diverged point is left out
    fig, ax = plt.subplots()
    plots.seed_band(x, runs, "Adam", ax=ax)
    (line,) = ax.get_lines()
    assert np.allclose(line.get_xdata(), [1.0, 2.0]) and np.allclose(line.get_ydata(), [2.0, 3.0])
    assert line.get_color() == plots.color("Adam")
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(1.0) and band[:, 1].max() == pytest.approx(4.0)
    plt.close(fig)


def test_seed_band_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="runs must have shape"):
        plots.seed_band(torch.arange(3.0), torch.ones(2, 4), "Adam")
