"""W&B dashboards as code: the project's workspace and a per-group report, built with ``wandb-workspaces``.

``python -m facemac.dashboard`` (conf/dashboard.yaml) builds them from the keys the stages log (``keys.py`` lists them
and checks every panel against them), saves them with credentials, and otherwise writes their JSON specs into its run
folder for ``publish=<folder>`` later. Importing this package is cheap: only ``specs``/``publish`` load the library.
"""
