"""Make the project's ``luigi.cfg`` apply wherever ``luigi --module pipelines`` is run.

Luigi reads ``luigi.cfg`` from the current directory only (or the file named
by ``LUIGI_CONFIG_PATH``). Run from another directory, the ``[retcode]``
section that turns a failed task into a non-zero exit would be lost, and
``luigi`` would exit 0 after a failure.

So when Luigi's *command line* imports the package (``luigi --module
pipelines``), the repository's ``luigi.cfg`` is added with Luigi's public
``luigi.configuration.add_config_path``, unless the user chose a config
(``LUIGI_CONFIG_PATH``) or already set exit codes of their own (a
``[retcode]`` section in ``/etc/luigi/luigi.cfg`` or a ``luigi.cfg`` in the
current directory): theirs win. When that file is not there (an install
without the repository), the same exit codes are set on the config in memory.
An ``import pipelines`` from Python code (a script, a notebook, a test
calling ``luigi.build``) changes nothing in Luigi's configuration.
"""
import logging
import os
import sys

import luigi.configuration

REPO_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "luigi.cfg")

RETCODES = {
    # The values Luigi's documentation suggests; any non-zero value makes a shell or CI job fail.
    "already_running": 10,
    "missing_data": 20,
    "not_run": 25,
    "task_failed": 30,
    "scheduling_error": 35,
    "unhandled_exception": 40,
}


def imported_by_luigi_command_line():
    """Whether this import runs inside Luigi's command-line parser (``luigi --module ...``)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "luigi.cmdline_parser":
            return True
        frame = frame.f_back
    return False


class PlainParameterErrors(logging.Filter):
    """Luigi logs an error raised while it reads the command line, a parameter value this
    project's parsers refuse (``--shape 16x16``, ``--epochs abc``), as "Uncaught exception in
    luigi" with the whole traceback, though the message already says what is wrong: keep the
    message, drop the traceback. Other records, and other errors, pass unchanged."""

    def filter(self, record):
        from core.exceptions import CNNError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, CNNError) and record.getMessage() == "Uncaught exception in luigi":
            record.msg, record.args = f"{type(exc).__name__}: {exc}", ()
            record.exc_info = record.exc_text = None
        return True


def plain_parameter_errors():
    """Install ``PlainParameterErrors`` on Luigi's logger, once."""
    log = logging.getLogger("luigi-interface")
    if not any(isinstance(f, PlainParameterErrors) for f in log.filters):
        log.addFilter(PlainParameterErrors())


def register_config(path=REPO_CONFIG):
    """Apply the project's exit codes to Luigi's configuration (see the module docstring).
    Returns True when anything was changed."""
    if "LUIGI_CONFIG_PATH" in os.environ:
        return False
    config = luigi.configuration.get_config()
    if config.has_section("retcode"):
        return False
    if os.path.isfile(path):
        return bool(luigi.configuration.add_config_path(path))
    config.add_section("retcode")
    for name, value in RETCODES.items():
        config.set("retcode", name, str(value))
    return True
