package worker

import (
	"io"
	"log/slog"
	"strings"
)

// parseLevel reads one of the four level names, in any case.
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// isSecretKey says whether an attribute's value is never written, whoever
// logs it: the worker logs no secret, and this keeps it so.
func isSecretKey(key string) bool {
	switch strings.ToLower(key) {
	case "password", "pass", "token", "seed", "nkey_seed", "secret", "creds_contents":
		return true
	}
	return false
}

// newLogger writes text or JSON records at level and above to w, with the
// values of secret-named attributes replaced and durations written as
// time.Duration.String writes them ("1.5s"), in JSON as in text, where
// slog's JSON handler would write integer nanoseconds.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if isSecretKey(a.Key) {
				return slog.String(a.Key, "[REDACTED]")
			}
			if a.Value.Kind() == slog.KindDuration {
				return slog.String(a.Key, a.Value.Duration().String())
			}
			return a
		},
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
