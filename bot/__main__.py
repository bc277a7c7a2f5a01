"""``python -m bot``: the ``clerk`` command, through its launcher (bot/cli/launch.py)."""

from bot.cli.launch import main

if __name__ == "__main__":
    main()
