"""``python -m bot.cli``: the ``clerk`` command straight through click (no help cache)."""

from bot.cli.main import main

if __name__ == "__main__":
    main()
