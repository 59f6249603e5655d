//go:build !race

package cruzdb

const raceEnabled = false
