//! The library half of the `ktstr` command: the capture session
//! (watch → freeze → walk → thaw → write) that the binary, tests and other programs call.
