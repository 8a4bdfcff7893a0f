package workercli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLoggerRedactsSecretAttributes(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out bytes.Buffer
		log := newLogger(&out, format, slog.LevelDebug)
		log.Debug("connecting", "password", secret, slog.Group("auth", "Token", secret), "user", "alice")
		if strings.Contains(out.String(), secret) || strings.Count(out.String(), "[REDACTED]") != 2 || !strings.Contains(out.String(), "alice") {
			t.Errorf("%s record %q: want both secrets redacted and the user kept", format, out.String())
		}
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "Warn": slog.LevelWarn, "error": slog.LevelError} {
		if got, ok := parseLevel(in); !ok || got != want {
			t.Errorf("parseLevel(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "warning", "info+2", "trace"} {
		if _, ok := parseLevel(in); ok {
			t.Errorf("parseLevel(%q) accepted", in)
		}
	}
}
