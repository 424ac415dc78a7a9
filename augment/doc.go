// Package augment implements the SimCLR image augmentation pipeline in pure Go.
//
// The operations follow the documented semantics of torchvision 0.14's tensor
// functional API (torchvision.transforms.functional on float32 CHW tensors):
// RandomResizedCrop (bilinear, antialias=False, align_corners=False), random
// horizontal flip, ColorJitter applied with a probability and in a random order,
// RandomGrayscale and GaussianBlur with reflect padding. Every image is a
// float32 slice holding 3 x H x W values (channel-major) in [0, 1].
//
// Randomness comes from a per-(seed, epoch, image, view) stream (RNG), so a run
// produces the same views whatever the number of workers. Pipeline prepares
// batches of two views in background goroutines so augmentation overlaps the
// training step.
package augment
