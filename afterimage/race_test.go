//go:build race

package afterimage

const raceEnabled = true
