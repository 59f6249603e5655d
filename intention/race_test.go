//go:build race

package intention

const raceEnabled = true
