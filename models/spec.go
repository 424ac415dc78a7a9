// Package models describes every encoder architecture once, as a small graph of layers.
//
// The description (a Graph) is the single source of truth: the gotch module used for training
// (package models/torch) and the ONNX graph written by package export are both built by walking
// it, so the two cannot drift. Parameter names follow torchvision's state_dict names
// (conv1.weight, layer1.0.bn1.running_mean, fc.0.weight ...), so checkpoints interoperate with
// PyTorch.
package models

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
)

// Op is the kind of a layer in a Graph.
type Op int

// The layer kinds an encoder is made of.
const (
	Input         Op = iota // the image batch, N x C x H x W
	Conv                    // 2-D convolution, no groups, no dilation
	BatchNorm               // batch normalisation over channel dim 1 (2-D or 4-D input)
	ReLU                    // max(x, 0)
	MaxPool                 // 2-D max pooling
	Add                     // element-wise sum of two inputs (residual connection)
	GlobalAvgPool           // mean over H and W, then flatten to N x C
	Linear                  // y = x W^T + b
)

var opNames = [...]string{"Input", "Conv", "BatchNorm", "ReLU", "MaxPool", "Add", "GlobalAvgPool", "Linear"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Node is one layer. In holds the indices of the nodes it reads.
type Node struct {
	Op   Op
	Name string // parameter prefix, torchvision style ("layer1.0.conv1"); empty for parameter-free ops
	In   []int

	// Conv / MaxPool geometry. Conv: InC -> OutC channels.
	InC, OutC, Kernel, Stride, Pad int
	// Bias: Conv and Linear have a bias vector.
	Bias bool
	// BatchNorm: Features channels; Affine false means no weight/bias (SimSiam's last BN);
	// ZeroInit starts the weight at 0 (torchvision's zero_init_residual, on a block's last BN).
	Features int
	Affine   bool
	ZeroInit bool
	// FrozenBias: a Linear layer's bias is a constant, not trained (SimSiam's last projector
	// layer, whose bias its BN cancels).
	FrozenBias bool
	// Linear: InF -> OutF features.
	InF, OutF int
}

// BatchNorm constants shared by training and export (PyTorch defaults).
const (
	BNEpsilon  = 1e-5
	BNMomentum = 0.1
)

// Param is one named tensor of a model: a trainable parameter or a batch-norm buffer.
type Param struct {
	Name      string
	Shape     []int64
	Trainable bool
	Init      Init
	FanIn     int // for uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) initialisation
	FanOut    int // for kaiming-normal(fan_out) initialisation
}

// Init says how a parameter starts.
type Init int

// Initialisations, as torchvision's ResNet and torch.nn's defaults do them.
const (
	InitZeros         Init = iota
	InitOnes               // batch-norm weight, running_var
	InitKaimingNormal      // conv weight: N(0, 2/fan_out) (torchvision ResNet)
	InitUniformFanIn       // linear weight and bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (torch.nn.Linear)
)

// Graph is a whole encoder: nodes in topological order, with named outputs.
type Graph struct {
	Spec  Spec
	Nodes []Node
	// Representation is the node whose output is the pooled feature h (before any head).
	Representation int
	// Projection is the node whose output is z = head(h); -1 when there is no head.
	Projection int
	// Prediction is SimSiam's predictor output p = pred(z); -1 otherwise.
	Prediction int
}

// Output names a graph output, as written in ONNX metadata.
const (
	OutputRepresentation = "representation"
	OutputProjection     = "projection"
)

func (g *Graph) add(n Node) int {
	g.Nodes = append(g.Nodes, n)
	return len(g.Nodes) - 1
}

// Params lists every tensor of the model in a fixed order, with torchvision names.
func (g *Graph) Params() []Param {
	var ps []Param
	for _, n := range g.Nodes {
		switch n.Op {
		case Conv:
			fanIn, fanOut := n.InC*n.Kernel*n.Kernel, n.OutC*n.Kernel*n.Kernel
			ps = append(ps, Param{Name: n.Name + ".weight", Shape: []int64{int64(n.OutC), int64(n.InC), int64(n.Kernel), int64(n.Kernel)},
				Trainable: true, Init: InitKaimingNormal, FanIn: fanIn, FanOut: fanOut})
			if n.Bias {
				ps = append(ps, Param{Name: n.Name + ".bias", Shape: []int64{int64(n.OutC)}, Trainable: true, Init: InitUniformFanIn, FanIn: fanIn})
			}
		case BatchNorm:
			f := []int64{int64(n.Features)}
			if n.Affine {
				ps = append(ps,
					Param{Name: n.Name + ".weight", Shape: f, Trainable: true, Init: bnWeightInit(n)},
					Param{Name: n.Name + ".bias", Shape: f, Trainable: true, Init: InitZeros})
			}
			ps = append(ps,
				Param{Name: n.Name + ".running_mean", Shape: f, Init: InitZeros},
				Param{Name: n.Name + ".running_var", Shape: f, Init: InitOnes})
		case Linear:
			ps = append(ps, Param{Name: n.Name + ".weight", Shape: []int64{int64(n.OutF), int64(n.InF)}, Trainable: true, Init: InitUniformFanIn, FanIn: n.InF})
			if n.Bias {
				ps = append(ps, Param{Name: n.Name + ".bias", Shape: []int64{int64(n.OutF)}, Trainable: !n.FrozenBias, Init: InitUniformFanIn, FanIn: n.InF})
			}
		}
	}
	return ps
}

func bnWeightInit(n Node) Init {
	if n.ZeroInit {
		return InitZeros
	}
	return InitOnes
}

// Spec selects an encoder: architecture, stem, head and input geometry.
type Spec struct {
	Arch    string `json:"arch"`     // resnet18 | resnet34 | resnet50
	Stem    string `json:"stem"`     // cifar | cifar-pool | imagenet
	Head    string `json:"head"`     // none | simclr | simsiam | linear (one Linear(d, out_dim), e.g. a stolen encoder matching a victim's dimension)
	OutDim  int    `json:"out_dim"`  // projection size (SimCLR 128; SimSiam 2048)
	InputC  int    `json:"input_c"`  // channels of the input image (3)
	InputHW int    `json:"input_hw"` // height = width of the input image (32, 224 ...)
	// PredHidden is the hidden width of the SimSiam predictor (0: OutDim/4, SimSiam's; the
	// reference's stealing SimSiam uses OutDim).
	PredHidden int `json:"pred_hidden,omitempty"`
	// ZeroInitResidual starts the last batch norm of every residual block at weight 0
	// (torchvision's zero_init_residual, as SimSiam builds its encoder).
	ZeroInitResidual bool `json:"zero_init_residual,omitempty"`
}

// Archs and stems the package can build.
var (
	Archs = []string{"resnet18", "resnet34", "resnet50"}
	Stems = []string{"cifar", "cifar-pool", "imagenet"}
	Heads = []string{"none", "simclr", "simsiam", "linear"}
)

// Validate checks a Spec and says which field is wrong.
func (s Spec) Validate() error {
	if !contains(Archs, s.Arch) {
		return fmt.Errorf("arch %q: expected one of %s", s.Arch, strings.Join(Archs, ", "))
	}
	if !contains(Stems, s.Stem) {
		return fmt.Errorf("stem %q: expected one of %s", s.Stem, strings.Join(Stems, ", "))
	}
	if !contains(Heads, s.Head) {
		return fmt.Errorf("head %q: expected one of %s", s.Head, strings.Join(Heads, ", "))
	}
	if s.Head != "none" && s.OutDim <= 0 {
		return fmt.Errorf("out_dim %d: a %s head needs a positive projection size", s.OutDim, s.Head)
	}
	if s.PredHidden < 0 || (s.PredHidden > 0 && s.Head != "simsiam") {
		return fmt.Errorf("pred_hidden %d: only a simsiam head has a predictor (0 = out_dim/4)", s.PredHidden)
	}
	if s.InputC <= 0 || s.InputHW < 8 {
		return fmt.Errorf("input %dx%dx%d: expected at least 1 channel and 8x8 pixels", s.InputC, s.InputHW, s.InputHW)
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// RepresentationDim is the size of the pooled feature h for an architecture.
func RepresentationDim(arch string) int {
	if arch == "resnet50" {
		return 2048
	}
	return 512
}

// Build describes the encoder selected by s.
func Build(s Spec) (*Graph, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	g := &Graph{Spec: s, Projection: -1, Prediction: -1}
	x := g.add(Node{Op: Input})

	// Stem: cifar keeps the input's resolution (3x3/1, no max-pool), imagenet divides it by 4
	// (7x7/2 + max-pool), cifar-pool by 2 (the CIFAR conv, then the max-pool: for small
	// images such as 28x28 Fashion-MNIST, 16x16 maps at layer 1 for a 32x32 input instead
	// of imagenet's 8x8, at a quarter of cifar's compute; the same parameters as cifar).
	if s.Stem == "imagenet" {
		x = g.conv(x, "conv1", s.InputC, 64, 7, 2, 3)
	} else {
		x = g.conv(x, "conv1", s.InputC, 64, 3, 1, 1)
	}
	x = g.add(Node{Op: BatchNorm, Name: "bn1", In: []int{x}, Features: 64, Affine: true})
	x = g.add(Node{Op: ReLU, In: []int{x}})
	if s.Stem == "imagenet" || s.Stem == "cifar-pool" {
		x = g.add(Node{Op: MaxPool, In: []int{x}, Kernel: 3, Stride: 2, Pad: 1})
	}

	// Residual stages.
	var blocks []int
	bottleneck := false
	switch s.Arch {
	case "resnet18":
		blocks = []int{2, 2, 2, 2}
	case "resnet34":
		blocks = []int{3, 4, 6, 3}
	case "resnet50":
		blocks = []int{3, 4, 6, 3}
		bottleneck = true
	}
	in := 64
	for stage, n := range blocks {
		width := 64 << stage
		for b := 0; b < n; b++ {
			stride := 1
			if b == 0 && stage > 0 {
				stride = 2
			}
			name := fmt.Sprintf("layer%d.%d", stage+1, b)
			if bottleneck {
				x, in = g.bottleneck(x, name, in, width, stride), width*4
			} else {
				x, in = g.basic(x, name, in, width, stride), width
			}
		}
	}
	x = g.add(Node{Op: GlobalAvgPool, In: []int{x}})
	g.Representation = x

	d := in
	switch s.Head {
	case "simclr":
		// ResNetSimCLR: backbone.fc = Sequential(Linear(d, d), ReLU, Linear(d, out)).
		z := g.linear(x, "fc.0", d, d, true)
		z = g.add(Node{Op: ReLU, In: []int{z}})
		g.Projection = g.linear(z, "fc.2", d, s.OutDim, true)
	case "linear":
		g.Projection = g.linear(x, "fc", d, s.OutDim, true)
	case "simsiam":
		// SimSiam projector: 3 x Linear-BN(-ReLU), last BN without affine. The first two Linear
		// layers have no bias; the last is the backbone's original fc, which keeps its bias,
		// frozen (requires_grad False in SimSiam).
		z := x
		for i, last := 0, 2; i <= last; i++ {
			outF := d
			if i == last {
				outF = s.OutDim
			}
			z = g.linear(z, fmt.Sprintf("fc.%d", 3*i), d, outF, i == last)
			g.Nodes[z].FrozenBias = i == last
			z = g.add(Node{Op: BatchNorm, Name: fmt.Sprintf("fc.%d", 3*i+1), In: []int{z}, Features: outF, Affine: i != last})
			if i != last {
				z = g.add(Node{Op: ReLU, In: []int{z}})
			}
			d = outF
		}
		g.Projection = z
		// Predictor: Linear(out, out/4, no bias)-BN-ReLU-Linear(out/4, out).
		hid := s.OutDim / 4
		if s.PredHidden > 0 {
			hid = s.PredHidden
		}
		p := g.linear(z, "predictor.0", s.OutDim, hid, false)
		p = g.add(Node{Op: BatchNorm, Name: "predictor.1", In: []int{p}, Features: hid, Affine: true})
		p = g.add(Node{Op: ReLU, In: []int{p}})
		g.Prediction = g.linear(p, "predictor.3", hid, s.OutDim, true)
	}
	return g, nil
}

func (g *Graph) conv(x int, name string, inC, outC, k, stride, pad int) int {
	return g.add(Node{Op: Conv, Name: name, In: []int{x}, InC: inC, OutC: outC, Kernel: k, Stride: stride, Pad: pad})
}

func (g *Graph) bn(x int, name string, c int) int {
	return g.add(Node{Op: BatchNorm, Name: name, In: []int{x}, Features: c, Affine: true})
}

func (g *Graph) linear(x int, name string, inF, outF int, bias bool) int {
	return g.add(Node{Op: Linear, Name: name, In: []int{x}, InF: inF, OutF: outF, Bias: bias})
}

// basic is torchvision's BasicBlock: 3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut, ReLU.
func (g *Graph) basic(x int, name string, in, width, stride int) int {
	y := g.conv(x, name+".conv1", in, width, 3, stride, 1)
	y = g.add(Node{Op: ReLU, In: []int{g.bn(y, name+".bn1", width)}})
	y = g.bn(g.conv(y, name+".conv2", width, width, 3, 1, 1), name+".bn2", width)
	g.Nodes[y].ZeroInit = g.Spec.ZeroInitResidual
	short := x
	if stride != 1 || in != width {
		short = g.bn(g.conv(x, name+".downsample.0", in, width, 1, stride, 0), name+".downsample.1", width)
	}
	return g.add(Node{Op: ReLU, In: []int{g.add(Node{Op: Add, In: []int{y, short}})}})
}

// bottleneck is torchvision's Bottleneck (ResNet v1.5: the stride sits on the 3x3 conv).
func (g *Graph) bottleneck(x int, name string, in, width, stride int) int {
	out := width * 4
	y := g.add(Node{Op: ReLU, In: []int{g.bn(g.conv(x, name+".conv1", in, width, 1, 1, 0), name+".bn1", width)}})
	y = g.add(Node{Op: ReLU, In: []int{g.bn(g.conv(y, name+".conv2", width, width, 3, stride, 1), name+".bn2", width)}})
	y = g.bn(g.conv(y, name+".conv3", width, out, 1, 1, 0), name+".bn3", out)
	g.Nodes[y].ZeroInit = g.Spec.ZeroInitResidual
	short := x
	if stride != 1 || in != out {
		short = g.bn(g.conv(x, name+".downsample.0", in, out, 1, stride, 0), name+".downsample.1", out)
	}
	return g.add(Node{Op: ReLU, In: []int{g.add(Node{Op: Add, In: []int{y, short}})}})
}

// InitWeights draws every tensor of the graph as torchvision and torch.nn initialise them
// (kaiming-normal fan_out for convolutions, U(+-1/sqrt(fan_in)) for linear layers, batch-norm
// weight and running variance 1, biases and means 0) from one Go random stream seeded by seed,
// in Params order: the same seed gives the same weights on every machine, whether they go to
// libtorch (models/torchnet) or straight into an ONNX file (package export).
func (g *Graph) InitWeights(seed int64) map[string][]float32 {
	rng := rand.New(rand.NewSource(seed))
	out := map[string][]float32{}
	for _, p := range g.Params() {
		n := int64(1)
		for _, d := range p.Shape {
			n *= d
		}
		vals := make([]float32, n)
		switch p.Init {
		case InitOnes:
			for i := range vals {
				vals[i] = 1
			}
		case InitKaimingNormal:
			std := math.Sqrt(2 / float64(p.FanOut))
			for i := range vals {
				vals[i] = float32(rng.NormFloat64() * std)
			}
		case InitUniformFanIn:
			b := 1 / math.Sqrt(float64(p.FanIn))
			for i := range vals {
				vals[i] = float32((2*rng.Float64() - 1) * b)
			}
		}
		out[p.Name] = vals
	}
	return out
}
