"""Make the project's ``luigi.cfg`` apply wherever ``luigi --module pipelines`` is run.

Luigi reads ``luigi.cfg`` from the current directory only (or the file named
by ``LUIGI_CONFIG_PATH``). Run from another directory, the ``[retcode]``
section that turns a failed task into a non-zero exit would be lost, and
``luigi`` would exit 0 after a failure. So, on import, the package registers
the repository's ``luigi.cfg`` as the *lowest-priority* config file: settings
in ``/etc/luigi/luigi.cfg``, a ``luigi.cfg`` in the current directory or
``LUIGI_CONFIG_PATH`` still win. When that file is not there (an install
without the repository), the same exit codes are set in memory, again only
where no config file gave one.
"""
import os

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


def _cfg_parser_class():
    from luigi.configuration.cfg_parser import LuigiConfigParser

    return LuigiConfigParser


def register_config(path=REPO_CONFIG):
    """Register ``path`` as Luigi's lowest-priority config and make sure ``[retcode]`` is set.

    Does nothing to the file list when ``LUIGI_CONFIG_PATH`` is set (the user
    chose the config) or when ``path`` is already registered. Returns the
    list of config paths Luigi reads, in increasing priority.
    """
    parser_cls = _cfg_parser_class()
    paths = parser_cls._config_paths
    if "LUIGI_CONFIG_PATH" not in os.environ and os.path.isfile(path):
        if os.path.abspath(path) not in [os.path.abspath(p) for p in paths]:
            # ConfigParser.read lets later files override earlier ones: put ours first.
            paths.insert(0, path)
            parser_cls.reload()
    config = luigi.configuration.get_config()
    if not config.has_section("retcode"):
        config.add_section("retcode")
    for name, value in RETCODES.items():
        if not config.has_option("retcode", name):
            config.set("retcode", name, str(value))
    return list(paths)
