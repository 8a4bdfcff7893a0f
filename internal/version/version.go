// Package version holds the release version both binaries and every worker's
// service registration report.
package version

// Version is jetpool's release version (semantic versioning).
const Version = "0.1.0"
