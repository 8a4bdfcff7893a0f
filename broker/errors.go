package broker

import "errors"

// Errors of connecting and provisioning.
var (
	// ErrTooLarge is matched by errors for messages above the server's
	// maximum payload.
	ErrTooLarge = errors.New("broker: message too large")
	// ErrInvalidName is matched by errors for invalid pool or prefix names.
	ErrInvalidName = errors.New("broker: invalid name")
)
