"""python -m fastwsgi: the same as the fastwsgi command."""
from fastwsgi.cli import main

if __name__ == "__main__":
    main(prog="fastwsgi")
