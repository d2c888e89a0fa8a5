"""Google Calendar v3: practitioner calendars as Schedules, free slots and Appointments.

``client`` syncs (freebusy, then events.list with sync tokens), books and cancels events and
manages push channels; ``normalize`` turns stored pages into canonical records; ``sandbox``
speaks the same API for tests and demos.
"""
