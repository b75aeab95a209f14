from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('maild', '0002_outbox_lease_owner_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LetterCount',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('addr', fields.CharField(max_length=320)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('state', fields.CharField(max_length=16)),
                ('letter', fields.CharField(max_length=64)),
                ('automatic', fields.BooleanField(default=False)),
                ('number', fields.CharField(default='', max_length=64)),
                ('subject', fields.TextField(default='', unique=False)),
                ('language', fields.CharField(default='zh', max_length=8)),
                ('summary_id', fields.CharField(null=True, max_length=998)),
            ],
            options={'table': 'letter_counts', 'app': 'maild', 'indexes': [Index(fields=['addr', 'at']), Index(fields=['state', 'addr']), Index(fields=['at'])], 'pk_attr': 'id', 'table_description': 'One recipient of one letter maild wrote or held back, for the hourly limits.'},
            bases=['Model'],
        ),
    ]
