"""Exercise checks of notebook 06: right → True, typical wrong → False, None → ✗ without raising."""
import pytest

from rlkit.lessons.nb06_gauss_newton_critic.exercises import check_baselines_block_scale, check_gauss_newton_step, check_sigma_step_ratio


@pytest.mark.parametrize("check,right,wrongs", [
    (check_baselines_block_scale, 4, [2, 1, 0.25, "four"]),
    (check_gauss_newton_step, [4 / 3, 7 / 3], [[5 / 3, 2.0], [5.0, 6.0], [4 / 3], "x"]),
    (check_sigma_step_ratio, 0.5, [0.25, 2, 1]),
])
def test_checks(check, right, wrongs, capsys):
    assert check(right) is True
    assert "✓" in capsys.readouterr().out
    for wrong in wrongs:
        assert check(wrong) is False
        assert "✗" in capsys.readouterr().out
    assert check(None) is False
    assert "✗" in capsys.readouterr().out
