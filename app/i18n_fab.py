"""Flask-AppBuilder strings its own zh catalog leaves untranslated.

Listed here so that `flask translate update` keeps them in our catalog, where
translations/zh gives them Chinese (our catalog overrides FAB's)."""
from flask_babel import lazy_gettext as _l

FAB_MISSING_ZH = [
    _l("Database Error"),
    _l("Not a valid choice"),
    _l("Must have at least two capital letters, one special character, two digits, three lower case letters and a minimal length of 10."),
    _l("Contains (insensitive)"),
    _l("Start with"),
    _l("In"),
    _l("Not In"),
    _l("Either select a role or a group"),
    _l("List Groups"),
    _l("Edit User Information"),
    _l("User information changed"),
    _l("Groups"),
    _l("The user's password for authentication"),
    _l("It's not a good policy to remove a user, just make it inactive"),
    _l("User(s) exists in the role, cannot delete"),
    _l("Show Group"),
    _l("Add Group"),
    _l("Edit Group"),
    _l("User(s) exists in the group, cannot delete"),
    _l("Add"),
    _l("Edit"),
    _l("Show"),
    _l("Delete"),
    _l("Are you sure you want to delete this item?"),
    _l("Sign In with "),
]
