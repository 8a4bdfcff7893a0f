package workercli

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

// secretKeys are attribute keys whose values are never written, whoever
// logs them: the worker logs no secret, and this keeps it so.
var secretKeys = map[string]bool{"password": true, "token": true, "seed": true, "nkey_seed": true, "secret": true, "creds_contents": true}

// newLogger writes text or JSON records at level and above to w, with the
// values of secret-named attributes replaced.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if secretKeys[strings.ToLower(a.Key)] {
				return slog.String(a.Key, "[REDACTED]")
			}
			return a
		},
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
