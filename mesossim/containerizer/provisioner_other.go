//go:build !linux

package containerizer

import "errors"

func availableBackends() map[string]backend { return map[string]backend{BackendCopy: copyBackend{}} }

func validateBackend(string, string) error { return nil }

func convertWhiteouts(string) error { return errors.New("overlayfs whiteouts need Linux") }
