from django.db import migrations, models


class Migration(migrations.Migration):
    # After 0004_job_claim_token (written at the same time): one leaf, not two.
    dependencies = [
        ("scheduler", "0004_job_claim_token"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="allow_trust_remote_code",
            field=models.BooleanField(
                default=False,
                help_text=(
                    "Let members' run.yaml set model.trust_remote_code: true, which runs Python code shipped "
                    "with a model on this cluster's nodes. Off: such jobs are refused."
                ),
                verbose_name="allow trust_remote_code",
            ),
        ),
    ]
