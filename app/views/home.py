from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose

from app.security import roles as R
from app.security.scope import current_scope


class HomeView(IndexView):
    index_template = "ce/index.html"

    @expose("/")
    def index(self):
        if not g.user or not g.user.is_authenticated:
            return redirect(url_for("AuthDBView.login"))
        scope = current_scope()
        role_labels = [R.ROLE_LABELS.get(r, r) for r in sorted(scope.roles)]
        return self.render_template(self.index_template, role_labels=role_labels, user=g.user)
