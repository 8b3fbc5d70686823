"""Helpers shared by the command-line tests (tests/test_cli.py, tests/test_cli_grid.py)."""
from rlkit.cli import main


def cli(capsys, *argv):
    """(exit status, stdout, stderr) of ``python -m rlkit *argv``, in this process."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit:  # argparse
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_line_error(status, err, *fragments):
    """The CLI's error contract: exit status 2 and one line ``rlkit <command>: error: ...`` naming ``fragments``."""
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
