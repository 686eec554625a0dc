"""NumPy/SimpleITK image operations: window/level, reslicing, resampling, region growing..."""
