package onnxpb

// AttrFloat returns a FLOAT attribute.
func AttrFloat(name string, v float32) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeFloat, F: v}
}

// AttrInt returns an INT attribute.
func AttrInt(name string, v int64) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeInt, I: v}
}

// AttrString returns a STRING attribute.
func AttrString(name, v string) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeString, S: strBytes(v)}
}

// AttrTensor returns a TENSOR attribute holding t.
func AttrTensor(name string, t *Tensor) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeTensor, T: t}
}

// AttrGraph returns a GRAPH attribute holding g.
func AttrGraph(name string, g *Graph) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeGraph, G: g}
}

// AttrFloats returns a FLOATS attribute; vs is copied.
func AttrFloats(name string, vs ...float32) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeFloats, Floats: append([]float32(nil), vs...)}
}

// AttrInts returns an INTS attribute; vs is copied.
func AttrInts(name string, vs ...int64) *Attribute {
	return &Attribute{Name: name, Type: AttrTypeInts, Ints: append([]int64(nil), vs...)}
}

// AttrStrings returns a STRINGS attribute.
func AttrStrings(name string, vs ...string) *Attribute {
	a := &Attribute{Name: name, Type: AttrTypeStrings}
	for _, v := range vs {
		a.Strings = append(a.Strings, strBytes(v))
	}
	return a
}

// Attr returns the node's attribute with the given name, or nil.
func (n *Node) Attr(name string) *Attribute {
	for _, a := range n.Attributes {
		if a != nil && a.Name == name {
			return a
		}
	}
	return nil
}

// TensorValueInfo returns a ValueInfo for a tensor of element type elem and
// the given shape (copied), e.g.
// TensorValueInfo("x", DataTypeFloat, []Dim{{Param: "batch"}, {Value: 3}}).
func TensorValueInfo(name string, elem DataType, shape []Dim) *ValueInfo {
	return &ValueInfo{Name: name, ElemType: elem, Shape: append([]Dim(nil), shape...), HasShape: true}
}

// strBytes converts s to bytes, giving nil for "" so that attributes built
// here compare equal to decoded ones.
func strBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
