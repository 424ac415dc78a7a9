package torchnet

import (
	"fmt"
	"runtime"

	"github.com/sugarme/gotch"
	"golang.org/x/sys/cpu"
)

// Precisions are the training precisions a Trainer accepts.
func Precisions() []string { return []string{"fp32", "bf16"} }

// CheckPrecision says whether training in precision p can run on dev: fp32 always; bf16 on a
// CUDA device, or on a CPU with bfloat16 instructions (AVX512-BF16 or AMX-BF16). Elsewhere
// libtorch would emulate bf16 arithmetic, slower than fp32, so that is refused with the reason.
func CheckPrecision(p string, dev gotch.Device) error { return checkPrecision(p, dev, cpuHasBF16()) }

func checkPrecision(p string, dev gotch.Device, cpuBF16 bool) error {
	switch p {
	case "", "fp32":
		return nil
	case "bf16":
		if dev.IsCuda() || cpuBF16 {
			return nil
		}
		return fmt.Errorf("precision bf16: this CPU (%s) has neither AVX512-BF16 nor AMX-BF16 instructions, so bf16 would be emulated and slower than fp32: use --precision fp32, or a CUDA device", runtime.GOARCH)
	}
	return fmt.Errorf("precision %q: expected one of %v", p, Precisions())
}

// CheckPrecisionOn is CheckPrecision for a device name ("cpu", "cuda", "cuda:N").
func CheckPrecisionOn(p, device string) error {
	dev, err := ParseDevice(device)
	if err != nil {
		return err
	}
	return CheckPrecision(p, dev)
}

func cpuHasBF16() bool {
	return runtime.GOARCH == "amd64" && (cpu.X86.HasAVX512BF16 || cpu.X86.HasAMXBF16)
}
