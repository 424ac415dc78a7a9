package defense

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ssl-onnx/ssl-onnx/infer"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec string
		want []string
	}{
		{"nosie:sigma=1", []string{`unknown defense "nosie"`, "valid: noise, round, topk, truncate, detect, prada, b4b"}},
		{"", []string{`unknown defense ""`}},
		{"watermark-answer", []string{`unknown defense "watermark-answer"`}},
		{"noise:sgima=1", []string{"noise: unknown parameter \"sgima\"", "valid: sigma, mu"}},
		{"noise:sigma=-1", []string{"noise: parameter sigma must be in [0, inf), found -1"}},
		{"noise:sigma=abc", []string{"noise: parameter sigma must be a finite number, found \"abc\""}},
		{"noise:sigma=NaN", []string{"parameter sigma must be a finite number"}},
		{"noise:sigma=1,sigma=2", []string{`parameter "sigma" given twice`}},
		{"noise:sigma", []string{`parameter "sigma"`, "not of the form name=value"}},
		{"noise:sigma=", []string{"not of the form name=value"}},
		{"round:decimals=12", []string{"round: parameter decimals must be in [0, 9], found 12"}},
		{"round:decimals=1.5", []string{"round: parameter decimals must be an integer, found \"1.5\""}},
		{"topk:k=0", []string{"topk: parameter k must be in [1, inf), found 0"}},
		{"truncate:size=3", []string{`truncate: unknown parameter "size"`, "valid: dims"}},
		{"detect:threshold=1.5", []string{"detect: parameter threshold must be in [0, 1], found 1.5"}},
		{"detect:scale=log", []string{"detect: parameter scale must be one of rms, abs, found \"log\""}},
		{"detect:center=mean", []string{"parameter center must be one of auto, none"}},
		{"prada:min=2", []string{"prada: parameter min must be in [3, 5000], found 2"}},
		{"prada:min=100,window=60", []string{"prada: parameter window must be >= min=100, found 60"}},
		{"b4b:planes=30", []string{"b4b: parameter planes must be in [1, 20], found 30"}},
		{"b4b:transform=yes", []string{"b4b: parameter transform must be one of true, false, found \"yes\""}},
		{"b4b:spread=0.5", []string{"b4b: parameter spread must be in [1, inf), found 0.5"}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := Parse(tc.spec)
			wantErr(t, err, tc.want...)
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, spec := range []string{
		"noise", "noise:sigma=0.5,mu=0", " noise : sigma = 0.5 , mu = 5 ", "round:decimals=2", "topk:k=64",
		"truncate:dims=256", "detect:threshold=0.8,history=1000,sigma=1", "detect:mu=1000,scale=abs,center=none",
		"prada:delta=0.9,min=50", "b4b:planes=12,alpha=0.01,beta=20,cap=4,transform=false", "noise:",
	} {
		if _, err := Parse(spec); err != nil {
			t.Errorf("Parse(%q): %v", spec, err)
		}
	}
	help := Help()
	for _, name := range Names() {
		if !strings.Contains(help, name+": ") {
			t.Errorf("Help() does not describe %s", name)
		}
	}
}

// TestComposeBuildErrors checks errors that need the wrapped encoder (its dimension).
func TestComposeBuildErrors(t *testing.T) {
	enc := encoder(t)
	tests := []struct {
		specs []string
		want  []string
	}{
		{[]string{"truncate:dims=600"}, []string{`spec 1 of 1 ("truncate:dims=600")`, "dims must be in [1, 512 (the representation dimension)], found 600"}},
		{[]string{"noise", "topk:k=513"}, []string{"spec 2 of 2", "k must be in [1, 512 (the representation dimension)], found 513"}},
		{[]string{"truncate:dims=100", "topk:k=101"}, []string{"spec 2 of 2", "k must be in [1, 100 (the representation dimension)], found 101"}},
		{[]string{"round", "bogus"}, []string{"spec 2 of 2", `unknown defense "bogus"`}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.specs, "|"), func(t *testing.T) {
			_, err := Compose(enc, tc.specs, 1)
			wantErr(t, err, tc.want...)
		})
	}
	if _, err := Compose(nil, nil, 1); err == nil {
		t.Error("Compose(nil) succeeded")
	}
	if _, err := NewTruncate(nil, 3); err == nil {
		t.Error("NewTruncate(nil) succeeded")
	}
}

// TestComposeOrder checks that specs apply in order (the first wraps the raw encoder) by
// composing two non-commuting defenses both ways and comparing with a manual application.
func TestComposeOrder(t *testing.T) {
	enc := encoder(t)
	x := patterns(1, 4)
	ctx := context.Background()
	clean := mustEncode(t, enc, ctx, x)

	// round then truncate == truncate then round (they commute); truncate then topk differs
	// from topk then truncate.
	a, err := Compose(enc, []string{"truncate:dims=8", "topk:k=2"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compose(enc, []string{"topk:k=2", "truncate:dims=8"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Info().OutputDim; got != 8 {
		t.Fatalf("truncate then topk: Info().OutputDim = %d, want 8", got)
	}
	if got := b.Info().OutputDim; got != 8 {
		t.Fatalf("topk then truncate: Info().OutputDim = %d, want 8", got)
	}
	va, vb := mustEncode(t, a, ctx, x), mustEncode(t, b, ctx, x)
	for i := range x.N {
		row := clean.Row(i)
		nonzeroA, nonzeroB := 0, 0
		for j := range 8 {
			if va.Row(i)[j] != 0 {
				nonzeroA++
				if va.Row(i)[j] != row[j] {
					t.Fatalf("row %d dim %d: kept value %v differs from clean %v", i, j, va.Row(i)[j], row[j])
				}
			}
			if vb.Row(i)[j] != 0 {
				nonzeroB++
			}
		}
		// truncate first: exactly 2 of the 8 survive. topk first: the 2 largest of 512
		// rarely fall in the first 8.
		if nonzeroA != 2 {
			t.Errorf("row %d: truncate then topk kept %d values, want 2", i, nonzeroA)
		}
		if nonzeroB > 2 {
			t.Errorf("row %d: topk then truncate kept %d values, want <= 2", i, nonzeroB)
		}
	}
	if reflect.DeepEqual(va.Data, vb.Data) {
		t.Error("both orders gave the same answer; order is not respected")
	}

	// The layers are listed outermost first and Find locates them.
	layers := Layers(a)
	if len(layers) != 3 {
		t.Fatalf("Layers: %d, want 3", len(layers))
	}
	if _, ok := layers[0].(*TopK); !ok {
		t.Errorf("outermost layer is %T, want *TopK", layers[0])
	}
	if _, ok := layers[1].(*Truncate); !ok {
		t.Errorf("middle layer is %T, want *Truncate", layers[1])
	}
	if tr, ok := Find[*Truncate](a); !ok || tr.Info().OutputDim != 8 {
		t.Errorf("Find[*Truncate] = %v, %v", tr, ok)
	}
	if _, ok := Find[*Detector](a); ok {
		t.Error("Find[*Detector] found a detector in a chain without one")
	}

	// No specs: the encoder itself.
	same, err := Compose(enc, nil, 1)
	if err != nil || same != enc {
		t.Errorf("Compose with no specs = %v, %v; want the encoder itself", same, err)
	}
}

// TestComposeSeeds checks that two noise layers draw different noise and that a chain is
// reproducible from its seed.
func TestComposeSeeds(t *testing.T) {
	enc := encoder(t)
	x := patterns(2, 3)
	ctx := asKey("alice")
	clean := mustEncode(t, enc, ctx, x)
	run := func(specs []string, seed int64) infer.Vectors {
		c, err := Compose(enc, specs, seed)
		if err != nil {
			t.Fatal(err)
		}
		return mustEncode(t, c, ctx, x)
	}
	one := run([]string{"noise:sigma=1"}, 5)
	if !reflect.DeepEqual(one.Data, run([]string{"noise:sigma=1"}, 5).Data) {
		t.Error("same seed, different noise")
	}
	if reflect.DeepEqual(one.Data, run([]string{"noise:sigma=1"}, 6).Data) {
		t.Error("different seeds, same noise")
	}
	// Two layers of sigma=1 add independent noise: variance 2, not 4 (which identical
	// draws would give).
	two := run([]string{"noise:sigma=1", "noise:sigma=1"}, 5)
	var ss float64
	for i, v := range two.Data {
		d := float64(v - clean.Data[i])
		ss += d * d
	}
	if v := ss / float64(len(two.Data)); v < 1.7 || v > 2.3 {
		t.Errorf("two independent sigma=1 layers: noise variance %.3f, want about 2", v)
	}
}
