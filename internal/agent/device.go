package agent

import (
	"errors"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/store"
)

// checkDevice refuses, before anything else set-as-backup does, a device
// that is a system path or the agent's state directory, inside it or
// containing it (issue 25 point 9; store.CheckDevice says which).
func (a *Agent) checkDevice(device string) error {
	err := store.CheckDevice(device, a.state.Path)
	var de *store.DeviceError
	if errors.As(err, &de) {
		return api.Errorf(api.CodeDeviceInvalid, "%s", de.Error())
	}
	return err
}
