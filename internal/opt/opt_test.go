package opt

import (
	"cmp"
	"errors"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	n, d, s := 0, time.Duration(0), ""
	Default(&n, 8)
	Default(&d, time.Second)
	Default(&s, "x")
	if n != 8 || d != time.Second || s != "x" {
		t.Fatalf("zero fields not defaulted: %d %v %q", n, d, s)
	}
	n, d = -3, 5*time.Millisecond
	Default(&n, 8)
	Default(&d, time.Second)
	if n != -3 || d != 5*time.Millisecond {
		t.Fatalf("set fields changed: %d %v", n, d)
	}
}

func TestNegative(t *testing.T) {
	bad := errors.New("pkg: invalid options")
	if err := Negative(bad, "Workers", 0); err != nil {
		t.Fatalf("zero refused: %v", err)
	}
	err := cmp.Or(Negative(bad, "A", 1), Negative(bad, "Timeout", -time.Second), Negative(bad, "C", -1.5))
	if !errors.Is(err, bad) || err.Error() != "pkg: invalid options: Timeout = -1s" {
		t.Fatalf("first negative field: %v", err)
	}
}
