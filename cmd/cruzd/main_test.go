package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{}) // connection-refused noise from killed servers
	// A whole run builds the binary in the background from the start.
	flag.Parse()
	early := !testing.Short() && flag.Lookup("test.run").Value.String() == ""
	if early {
		go buildBinary()
	}
	code := m.Run()
	if early {
		buildBinary() // waits for the build started above
	}
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// encodeCommand is the RESP multibulk encoding of args.
func encodeCommand(args [][]byte) []byte {
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}
