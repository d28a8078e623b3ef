"""`python -m agentkit.cli`: the `agentkit` command without the console script."""

from agentkit.cli import main

if __name__ == "__main__":
    main()
