"""Development / single-machine entry point: `python run.py`.

Applies migrations, syncs roles, loads regions and (unless DEMO=0) the demo data,
then serves on 127.0.0.1:$PORT (5000).  Production: gunicorn 'run:app'."""
import os

from app import create_app

app = create_app()

if __name__ == "__main__":
    from app.services.setup import initialize

    with app.app_context():
        initialize(demo=app.config["DEMO"])
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")), debug=False)
