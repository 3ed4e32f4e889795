#!/usr/bin/python3
"""Lock or unlock the default collection of a private gnome-keyring on the D-Bus session in
DBUS_SESSION_BUS_ADDRESS (tests/faults.rs: the keychain locked mid-run); `state` prints
whether it is locked.

Usage: keyring.py lock | keyring.py unlock PASSWORD | keyring.py state

Unlocking without a prompt uses gnome-keyring's own master-password call, so it needs
dbus-python (Debian: python3-dbus, for the system python3).
"""
import sys

import dbus

bus = dbus.SessionBus()
obj = bus.get_object("org.freedesktop.secrets", "/org/freedesktop/secrets")
service = dbus.Interface(obj, "org.freedesktop.Secret.Service")
collection = service.ReadAlias("default")
if sys.argv[1] == "lock":
    service.Lock([collection])
elif sys.argv[1] == "unlock":
    _, session = service.OpenSession("plain", dbus.String("", variant_level=1))
    internal = dbus.Interface(obj, "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface")
    secret = dbus.Struct(
        (session, dbus.ByteArray(b""), dbus.ByteArray(sys.argv[2].encode()), "text/plain"),
        signature="oayays",
    )
    internal.UnlockWithMasterPassword(collection, secret)
elif sys.argv[1] != "state":
    sys.exit("usage: keyring.py lock | keyring.py unlock PASSWORD | keyring.py state")
locked = dbus.Interface(bus.get_object("org.freedesktop.secrets", collection),
                        "org.freedesktop.DBus.Properties").Get(
    "org.freedesktop.Secret.Collection", "Locked")
print("locked" if locked else "unlocked")
