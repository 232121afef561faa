"""Analysis of captures: pure numpy, runs anywhere a capture can be opened."""
