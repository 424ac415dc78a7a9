// Package eval measures how good and how faithful image encoders are: a linear probe
// (multinomial logistic regression trained with Adam), a weighted kNN monitor, fidelity
// of a stolen encoder's representations to the victim's (cosine, L2) and agreement of
// their probe predictions, and an Evaluate orchestration that runs all of them for a set
// of ONNX models plus baselines (a randomly initialised encoder, raw pixels) and writes
// a table, JSON and PNG plots.
//
// Protocol. Features are extracted once per model through ONNX Runtime. An exported
// ONNX encoder is in inference mode by construction (BatchNorm uses its running
// statistics), so the probe sees the same representation a query to the served model
// returns. This fixes a flaw of the reference implementation, whose probe ran the
// encoder with BatchNorm in training mode, making features depend on the batch. The
// probe then trains only the linear layer on the fixed features, with the reference's
// settings (Adam, learning rate 3e-4, weight decay 8e-4, 100 epochs, batch 256) on
// standardised features (mean and standard deviation of the train split, applied to
// both splits), see DefaultProbeConfig.
//
// All computations here are pure Go (gonum's BLAS for the matrix products); nothing
// needs libtorch except creating the random-init baseline.
package eval
