// Package opt holds the two steps every Options type in cruzdb takes on its
// own copy: zero fields take their defaults (Default), and fields no default
// can fix are refused, naming the field (Negative). Each package keeps its
// own fields, defaults, bounds and sentinel error.
package opt

import "fmt"

// Default sets *field to def if it holds the zero value.
func Default[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

type signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

// Negative returns, if v is negative, an error wrapping sentinel that names
// field and its value ("<sentinel>: Field = v"), else nil. Checks of many
// fields read as cmp.Or(Negative(...), Negative(...), ...): the first
// error.
func Negative[T signed](sentinel error, field string, v T) error {
	if v < 0 {
		return fmt.Errorf("%w: %s = %v", sentinel, field, v)
	}
	return nil
}
