"""Video data: decoding, temporal sampling, transforms, dataset formats, loaders."""
