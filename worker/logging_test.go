package worker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// secret is a password no log record may ever show.
const secret = "hunter2-s3cr3t"

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

// TestLoggerWritesDurationsReadably: a duration is "1.5s" in a JSON record,
// at the top and in a group, not 1500000000, and stays so in text.
func TestLoggerWritesDurationsReadably(t *testing.T) {
	var out bytes.Buffer
	log := newLogger(&out, "json", slog.LevelInfo)
	log.Info("chunk", "took", 1500*time.Millisecond, slog.Group("lease", "ack_wait", 30*time.Second), "items", 3)
	var rec struct {
		Took  any `json:"took"`
		Lease struct {
			AckWait any `json:"ack_wait"`
		} `json:"lease"`
		Items any `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("record %q: %v", out.String(), err)
	}
	if rec.Took != "1.5s" || rec.Lease.AckWait != "30s" || rec.Items != float64(3) {
		t.Errorf("record %q: want took \"1.5s\", lease.ack_wait \"30s\" and items 3", out.String())
	}

	out.Reset()
	log = newLogger(&out, "text", slog.LevelInfo)
	log.Info("chunk", "took", 1500*time.Millisecond)
	if !strings.Contains(out.String(), " took=1.5s") {
		t.Errorf("text record %q: want took=1.5s", out.String())
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
