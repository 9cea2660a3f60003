"""What ships: the sdist and wheel, the Docker image, the type stubs, and the smoke
test a built wheel runs."""
