"""``python -m bot``: the ``clerk`` command, through its launcher (bot/launch.py)."""

from bot.launch import main

if __name__ == "__main__":
    main()
