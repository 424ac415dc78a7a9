package watermark

import "testing"

// TestJointTrainingEmbedsWatermark trains a ResNet-18 encoder together with a head on the
// rotation task and checks that the loss falls and that the head tells the rotation classes
// apart on held-out FMNIST test images well above chance.
func TestJointTrainingEmbedsWatermark(t *testing.T) {
	f := trained(t)
	t.Logf("%d steps of %d images in %.1f s: loss %.3f -> %.3f; held-out rotation accuracy %.3f before, %.3f after",
		fixSteps, fixBatch, f.seconds, f.firstLoss, f.lastLoss, f.chance, f.heldOut)
	if !(f.lastLoss < f.firstLoss-0.05) {
		t.Errorf("watermark loss did not fall: %.3f -> %.3f", f.firstLoss, f.lastLoss)
	}
	if f.heldOut < 0.6 {
		t.Errorf("held-out rotation accuracy %.3f after training, want >= 0.6 (chance 0.5)", f.heldOut)
	}
}
