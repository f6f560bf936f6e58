"""The training and testing loops and the pieces they are made of."""
